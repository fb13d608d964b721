#!/usr/bin/env python
from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.settings")
    from django.core.management import execute_from_command_line

    from apps.env import SettingError

    try:
        execute_from_command_line(sys.argv)
    except SettingError as exc:  # a setting that cannot be used: one line naming it, not a traceback
        sys.exit(str(exc))
