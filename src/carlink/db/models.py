"""Imports every domain's tables so that Alembic and create_all see the whole schema."""

from carlink.garage import models as garage_models
from carlink.identity import models as identity_models
from carlink.remote import models as remote_models
from carlink.telemetry import models as telemetry_models

__all__ = ["garage_models", "identity_models", "remote_models", "telemetry_models"]
