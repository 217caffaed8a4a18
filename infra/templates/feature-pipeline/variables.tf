# paved_team, paved_workspace and paved_template are set and declared by Paved (paved_platform.tf in the run's
# work dir, from apps/catalog/spec/platform.py): use them, do not declare them.

# --- Parameters (template.yaml) -------------------------------------------------------------------------------

variable "pipeline_name" {
  description = "Name of the pipeline; prefixes its feature views."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{2,39}$", var.pipeline_name))
    error_message = "pipeline_name must be 3-40 characters: lowercase letters, digits and underscores, starting with a letter."
  }
}

variable "schedule" {
  description = "When the pipeline runs, as a five-field cron expression in UTC (minute hour day-of-month month day-of-week)."
  type        = string
  default     = "0 2 * * *"

  validation {
    condition = can(regex(
      "^(\\*|[0-9]{1,2}(-[0-9]{1,2})?)(/[1-9][0-9]?)?(,(\\*|[0-9]{1,2}(-[0-9]{1,2})?)(/[1-9][0-9]?)?)*( (\\*|[0-9]{1,2}(-[0-9]{1,2})?)(/[1-9][0-9]?)?(,(\\*|[0-9]{1,2}(-[0-9]{1,2})?)(/[1-9][0-9]?)?)*){4}$",
      var.schedule
    ))
    error_message = "schedule must be a five-field cron expression of numbers, ranges, steps and lists, such as \"0 2 * * *\" or \"*/15 8-18 * * 1-5\"."
  }
}

variable "source_table" {
  description = "Warehouse table the features are computed from: table, schema.table or catalog.schema.table."
  type        = string

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}(\\.[a-z_][a-z0-9_]{0,62}){0,2}$", var.source_table))
    error_message = "source_table must be a lowercase table name, optionally qualified as schema.table or catalog.schema.table."
  }
}

variable "entity_key" {
  description = "Column that identifies the entity the features describe."
  type        = string
  default     = "user_id"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.entity_key))
    error_message = "entity_key must be a lowercase column name."
  }
}

variable "feature_names" {
  description = "Features the pipeline materialises, one feature view each."
  type        = list(string)

  validation {
    condition     = length(var.feature_names) >= 1 && length(var.feature_names) <= 50
    error_message = "feature_names must list between 1 and 50 features."
  }

  validation {
    condition     = alltrue([for name in var.feature_names : can(regex("^[a-z][a-z0-9_]{0,62}$", name))])
    error_message = "Each feature name must be a lowercase identifier (letters, digits, underscores)."
  }

  validation {
    condition     = length(distinct(var.feature_names)) == length(var.feature_names)
    error_message = "feature_names must not list a feature twice."
  }
}

variable "backfill_days" {
  description = "Days of history computed when the pipeline is created (0: no backfill)."
  type        = number
  default     = 7

  validation {
    condition     = var.backfill_days >= 0 && var.backfill_days <= 365 && floor(var.backfill_days) == var.backfill_days
    error_message = "backfill_days must be a whole number from 0 to 365."
  }
}

variable "online_store" {
  description = "Also serve the latest feature values from the low-latency online store."
  type        = bool
  default     = false
}
