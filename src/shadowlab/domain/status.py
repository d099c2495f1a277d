"""Status values, as SageMaker spells them (they are enums in botocore's model too)."""

from __future__ import annotations

from enum import StrEnum


class EndpointStatus(StrEnum):
    OUT_OF_SERVICE = "OutOfService"
    CREATING = "Creating"
    UPDATING = "Updating"
    SYSTEM_UPDATING = "SystemUpdating"
    ROLLING_BACK = "RollingBack"
    IN_SERVICE = "InService"
    DELETING = "Deleting"
    FAILED = "Failed"


class ExperimentStatus(StrEnum):
    CREATING = "Creating"
    CREATED = "Created"
    UPDATING = "Updating"
    STARTING = "Starting"
    STOPPING = "Stopping"
    RUNNING = "Running"
    COMPLETED = "Completed"
    CANCELLED = "Cancelled"


# An experiment in one of these holds its endpoint: no second experiment may start there.
ACTIVE_EXPERIMENT_STATUSES = frozenset(
    {
        ExperimentStatus.CREATING,
        ExperimentStatus.CREATED,
        ExperimentStatus.UPDATING,
        ExperimentStatus.STARTING,
        ExperimentStatus.RUNNING,
        ExperimentStatus.STOPPING,
    }
)


class ModelVariantStatus(StrEnum):
    """ModelVariantConfigSummary.Status."""

    CREATING = "Creating"
    UPDATING = "Updating"
    IN_SERVICE = "InService"
    DELETING = "Deleting"
    DELETED = "Deleted"
