"""Configuration: settings (environment), the playbook (YAML) and logging setup."""

from firebreak.config.playbook import Playbook, load_playbook
from firebreak.config.settings import Settings, get_settings

__all__ = ["Playbook", "Settings", "get_settings", "load_playbook"]
