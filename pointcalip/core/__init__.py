"""Plumbing shared by every stage: where files live (paths), file checksums (digest), and
several processes sharing one job (distributed)."""
from .lazy import renamed_modules

# the config loader was core/config.py, a name pointcalip/config.py (the command configs) had
renamed_modules(__name__, {"config": "config_loader"})
