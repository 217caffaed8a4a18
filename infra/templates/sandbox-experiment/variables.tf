# paved_team, paved_workspace and paved_template are set and declared by Paved (paved_platform.tf in the run's
# work dir, from apps/catalog/spec/platform.py): use them, do not declare them.

# --- Parameters (template.yaml) -------------------------------------------------------------------------------

variable "experiment_name" {
  description = "Short name of the experiment; part of the run id and the tracking URL."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,39}$", var.experiment_name))
    error_message = "experiment_name must be 3-40 characters: lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "framework" {
  description = "ML framework the sandbox image is built around."
  type        = string
  default     = "pytorch"

  validation {
    condition     = contains(["pytorch", "tensorflow", "jax", "scikit-learn", "xgboost"], var.framework)
    error_message = "framework must be one of pytorch, tensorflow, jax, scikit-learn, xgboost."
  }
}

variable "gpu_count" {
  description = "GPUs reserved for the sandbox (0 for CPU only)."
  type        = number
  default     = 1

  validation {
    condition     = var.gpu_count >= 0 && var.gpu_count <= 8 && floor(var.gpu_count) == var.gpu_count
    error_message = "gpu_count must be a whole number from 0 to 8."
  }
}

variable "dataset_size_gb" {
  description = "Scratch space for the experiment's data, in GB."
  type        = number
  default     = 50

  validation {
    condition     = var.dataset_size_gb >= 1 && var.dataset_size_gb <= 2000 && floor(var.dataset_size_gb) == var.dataset_size_gb
    error_message = "dataset_size_gb must be a whole number from 1 to 2000."
  }
}

variable "notes" {
  description = "Free-form notes stored with the run (hypothesis, ticket link)."
  type        = string
  default     = ""

  validation {
    condition     = length(var.notes) <= 500
    error_message = "notes must be at most 500 characters."
  }
}
