"""Loaded by every Python process started while this folder is on PYTHONPATH (Ray's workers, in tests/test_ray.py):
the first time a distillation saves a checkpoint, its process is killed - a worker lost mid-training.

Ray's own processes (GCS, dashboard agents) load this too, so it imports nothing heavy: it patches transformers'
Trainer only when some process imports `transformers.trainer` itself."""

import importlib.abc
import importlib.machinery
import os
import sys

_marker = os.environ.get("KDBENCH_KILL_ONCE")
_TARGET = "transformers.trainer"


def _patch(module) -> None:
    save = module.Trainer._save_checkpoint

    def save_then_die(self, *args, **kwargs):
        save(self, *args, **kwargs)
        if "/runs/" in str(self.args.output_dir) and not os.path.exists(_marker):
            open(_marker, "w").close()
            os.kill(os.getpid(), 9)

    module.Trainer._save_checkpoint = save_then_die


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _patch(module)

        spec.loader.exec_module = exec_module
        return spec


if _marker:
    sys.meta_path.insert(0, _PatchAfterImport())
