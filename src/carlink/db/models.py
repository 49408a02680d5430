"""Imports every domain's tables so that Alembic and create_all see the whole schema."""

from carlink.catalog import models as catalog_models
from carlink.fod import models as fod_models
from carlink.garage import models as garage_models
from carlink.help import models as help_models
from carlink.identity import models as identity_models
from carlink.incar import models as incar_models
from carlink.notify import models as notify_models
from carlink.partners import models as partners_models
from carlink.privacy import models as privacy_models
from carlink.remote import models as remote_models
from carlink.security import models as security_models
from carlink.store import models as store_models
from carlink.store import payments as sandbox_payment_models
from carlink.telemetry import models as telemetry_models

__all__ = [
    "catalog_models",
    "fod_models",
    "garage_models",
    "help_models",
    "identity_models",
    "incar_models",
    "notify_models",
    "partners_models",
    "privacy_models",
    "remote_models",
    "sandbox_payment_models",
    "security_models",
    "store_models",
    "telemetry_models",
]
