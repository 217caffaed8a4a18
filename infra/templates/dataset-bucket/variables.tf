# paved_team, paved_workspace and paved_template are set and declared by Paved (paved_platform.tf in the run's
# work dir, from apps/catalog/spec/platform.py): use them, do not declare them.

# --- Parameters (template.yaml) -------------------------------------------------------------------------------

variable "region" {
  description = "AWS region of the bucket; keep it next to the compute that reads it."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = contains(["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1"], var.region)
    error_message = "region must be one of us-east-1, us-east-2, us-west-2, eu-west-1, eu-central-1."
  }
}

variable "bucket_name" {
  description = "Prefix of the bucket name; AWS appends a unique suffix."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,34}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be 3-36 characters: lowercase letters, digits and dashes, not starting or ending with a dash."
  }
}

variable "encryption" {
  description = "Server-side encryption: aws:kms (SSE-KMS with a dedicated, rotated key) or AES256 (SSE-S3)."
  type        = string
  default     = "aws:kms"

  validation {
    condition     = contains(["aws:kms", "AES256"], var.encryption)
    error_message = "encryption must be aws:kms or AES256."
  }
}

variable "versioning" {
  description = "Keep previous versions of overwritten and deleted objects."
  type        = bool
  default     = true
}

variable "noncurrent_version_expiration_days" {
  description = "Days previous object versions are kept when versioning is on."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && var.noncurrent_version_expiration_days <= 3650 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "noncurrent_version_expiration_days must be a whole number from 1 to 3650."
  }
}

variable "glacier_after_days" {
  description = "Move objects to S3 Glacier Flexible Retrieval this many days after creation (0: never)."
  type        = number
  default     = 90

  validation {
    condition     = var.glacier_after_days >= 0 && var.glacier_after_days <= 3650 && floor(var.glacier_after_days) == var.glacier_after_days
    error_message = "glacier_after_days must be a whole number from 0 to 3650."
  }
}

variable "expected_size_gb" {
  description = "Expected amount of data, in GB. Only used for the cost estimate."
  type        = number
  default     = 100

  validation {
    condition     = var.expected_size_gb >= 1 && var.expected_size_gb <= 1000000
    error_message = "expected_size_gb must be from 1 to 1000000."
  }
}

variable "force_destroy" {
  description = "Delete all objects when the workspace is destroyed. Off: destroying a non-empty bucket fails, protecting the data."
  type        = bool
  default     = false
}
