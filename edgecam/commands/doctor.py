"""``edgecam doctor``: which backends this machine can run models on, and what to do about the others.

Exit code: 0, or with ``--backend B`` (or a config whose ``model.backend`` is
not ``auto``) the code a run on that backend would stop with (6: a library or
package is missing, 3: the device is absent or this user may not open it).
"""

from __future__ import annotations

from edgecam.commands import load_config


def register(sub) -> None:
    p = sub.add_parser("doctor", help="say which accelerators are present and ready, and what to do about the rest")
    p.add_argument("--config", help="config file (its model.backend is the one the exit code is about)")
    p.add_argument("--backend", choices=["cpu", "edgetpu", "imx500", "hailo"],
                   help="exit with this backend's code (0 ready, 6 library missing, 3 device absent or not accessible)")
    p.add_argument("--probe", action="store_true",
                   help="load the Edge TPU delegate and run mobilenet_v1_edgetpu once (in a child process)")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args) -> int:
    from edgecam.model.backends import doctor

    cfg = load_config(args)
    probe_model = None
    if args.probe:
        from edgecam import registry

        # Fetched only if the library and a Coral are there (doctor.edgetpu calls it then).
        def probe_model():
            return registry.resolve("mobilenet_v1_edgetpu", None, dest_dir=cfg.model.dir).model_path
    checks = doctor.run(probe_model=probe_model)
    width = max(len(c.backend) for c in checks)
    for c in checks:
        print(f"{c.backend.ljust(width)}  {c.line}")
    # The board (temperature, power, memory: docs/pi-health.md) is said, never part of the exit code.
    from edgecam.health.board import BoardReader, doctor_line

    print(f"{'board'.ljust(width)}  {doctor_line(BoardReader().read())}")
    backend = args.backend or (cfg.model.backend if cfg.model.backend != "auto" else None)
    return next((c.code for c in checks if c.backend == backend), 0)
