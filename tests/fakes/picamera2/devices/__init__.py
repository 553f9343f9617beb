"""``picamera2.devices`` of the fake: the AI Camera's class is picamera2's REAL code (see ``imx500/``).

The real package also imports Hailo (when hailo_platform is there) and IMX708
here; edgecam imports ``picamera2.devices.imx500`` and ``picamera2.devices.hailo``
directly, so this one imports nothing.
"""
