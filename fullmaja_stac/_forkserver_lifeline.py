"""Imported only by the forkserver (see :mod:`fullmaja_stac.lifeline`): bind it to the life
of the command that started it. Never import this from the command itself."""

import os

from fullmaja_stac.lifeline import ENV_PARENT, die_with_parent

die_with_parent(int(os.environ[ENV_PARENT]) if os.environ.get(ENV_PARENT, "").isdigit() else None)
