"""Training job errors, each with a stable `code` (and the `field` of the input at fault)."""

from apps.core.errors import Conflict, NotFound, ValidationFailed


class IllegalJobTransition(Conflict):
    code = "illegal_job_transition"


class InvalidTrainingJob(ValidationFailed):
    """A job contract the validator refuses; subclasses name the input."""

    code = "invalid_training_job"


class UnknownCluster(InvalidTrainingJob):
    """No such cluster in the job's team (another team's cluster reads the same: nothing is revealed)."""

    code = "unknown_cluster"
    field = "cluster"


class ClusterUnavailable(InvalidTrainingJob):
    code = "cluster_unavailable"
    field = "cluster"


class JobDoesNotFitCluster(InvalidTrainingJob):
    code = "job_does_not_fit_cluster"
    field = "cluster"


class InvalidImage(InvalidTrainingJob):
    code = "invalid_image"
    field = "image"


class ImageNotAllowed(InvalidTrainingJob):
    code = "image_not_allowed"
    field = "image"


class InvalidCommand(InvalidTrainingJob):
    code = "invalid_command"
    field = "command"


class InvalidFramework(InvalidTrainingJob):
    code = "invalid_framework"
    field = "framework"


class InvalidEnvironment(InvalidTrainingJob):
    code = "invalid_environment"
    field = "environment"


class ReservedEnvironmentKey(InvalidEnvironment):
    code = "reserved_environment_key"


class InvalidUri(InvalidTrainingJob):
    code = "invalid_uri"


class InvalidHyperparameters(InvalidTrainingJob):
    code = "invalid_hyperparameters"
    field = "hyperparameters"


class InvalidJobSize(InvalidTrainingJob):
    """gpus_per_node, node_count, max_run_minutes or max_retries out of bounds (the field says which)."""

    code = "invalid_job_size"


class JobOverQuota(Conflict):
    """The job alone needs more GPUs than the team's quota: it could never run, so it is not queued."""

    code = "job_over_quota"
    title = "GPU quota exceeded"


class UnknownAgentJob(NotFound):
    """No such job for this node (another cluster's or another node's job reads the same: nothing is revealed)."""

    code = "unknown_training_job"


class JobNotStarted(Conflict):
    """The agent reported logs or an exit for a job it never claimed (it is still queued or scheduling)."""

    code = "training_job_not_started"


class LogLinesOutOfOrder(Conflict):
    """A log batch starts after the next line the portal expects: an earlier batch is missing."""

    code = "log_lines_out_of_order"
    field = "first_line"


class JobOutputNotRegistrable(ValidationFailed):
    """The job cannot be registered as a model (it did not succeed, or declared no output)."""

    code = "job_output_not_registrable"


class InvalidJobDefinition(ValidationFailed):
    """A definition's schedule fields the validator refuses (its job contract raises InvalidTrainingJob)."""

    code = "invalid_job_definition"


class InvalidDefinitionName(InvalidJobDefinition):
    code = "invalid_definition_name"
    field = "name"


class InvalidSchedule(InvalidJobDefinition):
    code = "invalid_schedule"
    field = "schedule"


class InvalidConcurrencyPolicy(InvalidJobDefinition):
    code = "invalid_concurrency_policy"
    field = "concurrency_policy"


class InvalidRegisterModel(InvalidJobDefinition):
    code = "invalid_register_model"
    field = "register_model"


class DefinitionNameTaken(Conflict):
    code = "job_definition_name_taken"
    field = "name"


class HeldByChangeFreeze(Conflict):
    """A trigger during a change freeze: nothing is submitted (scheduled firings wait for the freeze instead)."""

    code = "held_by_change_freeze"
    title = "Change freeze"


class ClusterChoiceConflict(InvalidTrainingJob):
    """Both `cluster` and `new_cluster`: a job runs on one of the team's clusters or on one made for it."""

    code = "cluster_and_new_cluster"
    field = "new_cluster"


class InvalidClusterTemplate(InvalidTrainingJob):
    """The `new_cluster` template version is no launchable gpu_cluster template the team may use."""

    code = "invalid_cluster_template"
    field = "new_cluster"
