"""edgecam: a real-time camera image classifier for the Raspberry Pi (TFLite MobileNet)."""

from setuptools import find_packages, setup

setup(
    name="edgecam",
    version="0.1.0",
    description="Real-time camera image classifier for the Raspberry Pi: TFLite MobileNet, live view, logs, MQTT, systemd",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["edgecam", "edgecam.*"]),
    # The registry and the unit ship beside the package for non-editable installs;
    # edgecam.registry finds models.yaml in <prefix>/share/edgecam.
    data_files=[("share/edgecam", ["models/models.yaml"]), ("share/edgecam/systemd", ["systemd/edgecam.service"])],
    install_requires=[
        "numpy>=1.23",
        # OpenCV is an extra, [gui] or [headless], so that exactly one of the two
        # wheels that both provide cv2 gets installed (see "gui" and "headless" below).
        "pyyaml>=6",
        # The renamed TFLite runtime: Python 3.9-3.13, NumPy 2, about 6x faster
        # than tflite-runtime 2.14 on these uint8 models.
        "ai-edge-litert>=1.2",
    ],
    extras_require={
        # OpenCV with windows (a desktop: its wheel loads libGL, glib and libxcb,
        # which Pi OS Lite lacks) or without (Lite, the service, servers). Pick one;
        # `make install` picks by the libraries present. Wheels for aarch64 and x86_64.
        # < 5: OpenCV 5 draws text with an embedded TrueType font that costs
        # 8.6 MB of RSS on the first putText; 4.x draws Hershey strokes (0.8 MB).
        "gui": ["opencv-python>=4.8,<5"],
        "headless": ["opencv-python-headless>=4.8,<5"],
        # tflite-runtime 2.14 (Python <= 3.11) was built against NumPy 1.
        "tflite": ["tflite-runtime>=2.14", "numpy<2"],
        "mqtt": ["paho-mqtt>=2.0"],
        # pytest-xdist: `make test` runs two workers, so the systemd and install suites (minutes of waiting
        # on systemd's timers and pip) run beside other test files: .ci/run's wall time, not its CPU.
        "test": ["pytest>=7", "prometheus-client>=0.17", "pytest-xdist>=3"],
    },
    entry_points={"console_scripts": ["edgecam=edgecam.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Operating System :: POSIX :: Linux",
    ],
)
