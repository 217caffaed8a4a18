# paved_team, paved_workspace and paved_template are set and declared by Paved (paved_platform.tf in the run's
# work dir, from apps/catalog/spec/platform.py): use them, do not declare them.

# --- Parameters (template.yaml) -------------------------------------------------------------------------------

variable "region" {
  description = "AWS region to serve the endpoint from."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = contains(["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1"], var.region)
    error_message = "region must be one of us-east-1, us-east-2, us-west-2, eu-west-1, eu-central-1."
  }
}

variable "endpoint_name" {
  description = "Short name of the endpoint; the SageMaker endpoint is called <endpoint_name>-<suffix>."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,23}$", var.endpoint_name))
    error_message = "endpoint_name must be 3-24 characters: lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "model_image_uri" {
  description = "ECR image of the inference container, with a tag or digest."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com/[a-z0-9][a-z0-9._/-]{0,255}(:[A-Za-z0-9._-]{1,128}|@sha256:[a-f0-9]{64})$", var.model_image_uri))
    error_message = "model_image_uri must be an ECR image such as 123456789012.dkr.ecr.us-east-1.amazonaws.com/repo:tag."
  }
}

variable "model_data_url" {
  description = "S3 URL of the model artifacts (model.tar.gz)."
  type        = string

  validation {
    condition     = can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[A-Za-z0-9._/=+-]{1,900}\\.tar\\.gz$", var.model_data_url))
    error_message = "model_data_url must be an s3://bucket/key.tar.gz URL."
  }
}

variable "instance_type" {
  description = "SageMaker hosting instance type."
  type        = string
  default     = "ml.g5.xlarge"

  validation {
    condition = contains([
      "ml.m5.large", "ml.m5.xlarge", "ml.c5.xlarge", "ml.g4dn.xlarge", "ml.g5.xlarge", "ml.g5.2xlarge",
      "ml.g5.12xlarge", "ml.p4d.24xlarge",
    ], var.instance_type)
    error_message = "instance_type must be one of the supported SageMaker hosting instance types."
  }
}

variable "initial_instance_count" {
  description = "Instances serving the endpoint at launch (and the autoscaling minimum)."
  type        = number
  default     = 1

  validation {
    condition     = var.initial_instance_count >= 1 && var.initial_instance_count <= 10 && floor(var.initial_instance_count) == var.initial_instance_count
    error_message = "initial_instance_count must be a whole number from 1 to 10."
  }
}

variable "max_instance_count" {
  description = "Autoscaling maximum; equal to initial_instance_count disables autoscaling."
  type        = number
  default     = 1

  validation {
    condition     = var.max_instance_count >= 1 && var.max_instance_count <= 20 && floor(var.max_instance_count) == var.max_instance_count
    error_message = "max_instance_count must be a whole number from 1 to 20."
  }

  validation {
    condition     = var.max_instance_count >= var.initial_instance_count
    error_message = "max_instance_count must be at least initial_instance_count."
  }
}

variable "target_invocations_per_instance" {
  description = "Autoscaling target: invocations per instance per minute."
  type        = number
  default     = 100

  validation {
    condition     = var.target_invocations_per_instance >= 1 && var.target_invocations_per_instance <= 100000 && floor(var.target_invocations_per_instance) == var.target_invocations_per_instance
    error_message = "target_invocations_per_instance must be a whole number from 1 to 100000."
  }
}
