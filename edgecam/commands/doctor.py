"""``edgecam doctor``: which backends this machine can run models on, and what to do about the others.

Exit code: 0, or with ``--backend B`` (or a config whose ``model.backend`` is
not ``auto``) the code a run on that backend would stop with (6: a library or
package is missing, 3: the device is absent or this user may not open it).
"""

from __future__ import annotations

from edgecam.commands import load_config
from edgecam.config import backends as backend_names


def register(sub) -> None:
    p = sub.add_parser("doctor", help="say which accelerators are present and ready, and what to do about the rest")
    p.add_argument("--config", help="config file (its model.backend is the one the exit code is about)")
    p.add_argument("--backend", choices=backend_names.names(),
                   help="exit with this backend's code (0 ready, 6 library missing, 3 device absent or not accessible)")
    p.add_argument("--probe", action="store_true",
                   help="run a model once on each accelerator that can be probed (the Edge TPU: its delegate loads "
                        "and runs mobilenet_v1_edgetpu, in a child process)")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args) -> int:
    # Here, not at the top: every command's module is imported for --help (the registry reads YAML, the
    # backends' modules bring numpy, OpenCV and the runtime: most of a second).
    from edgecam import registry
    from edgecam.health.board import BoardReader, doctor_line
    from edgecam.model.backends import doctor

    cfg = load_config(args)
    resolve_model = None
    if args.probe:
        # Fetched only if a backend's library and device are there (its check calls it then).
        def resolve_model(name: str):
            return registry.resolve(name, None, dest_dir=cfg.model.dir).model_path
    checks = doctor.run(resolve_model=resolve_model)
    width = max(len(c.backend) for c in checks)
    for c in checks:
        print(f"{c.backend.ljust(width)}  {c.line}")
    # The board (temperature, power, memory: docs/pi-health.md) is said, never part of the exit code.
    print(f"{'board'.ljust(width)}  {doctor_line(BoardReader().read())}")
    backend = args.backend or (cfg.model.backend if cfg.model.backend != backend_names.AUTO else None)
    return next((c.code for c in checks if c.backend == backend), 0)
