# paved_team, paved_workspace and paved_template are set and declared by Paved (paved_platform.tf in the run's
# work dir, from apps/catalog/spec/platform.py): use them, do not declare them.

# --- Parameters (template.yaml) -------------------------------------------------------------------------------

variable "region" {
  description = "AWS region to run the notebook in."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = contains(["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1"], var.region)
    error_message = "region must be one of us-east-1, us-east-2, us-west-2, eu-west-1, eu-central-1."
  }
}

variable "notebook_name" {
  description = "Short name of the notebook; prefixes every resource name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,23}$", var.notebook_name))
    error_message = "notebook_name must be 3-24 characters: lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "instance_type" {
  description = "EC2 instance type: m5/r5 for CPU work, g4dn/g5 for a GPU."
  type        = string
  default     = "g5.xlarge"

  validation {
    condition = contains([
      "m5.xlarge", "m5.2xlarge", "r5.2xlarge", "g4dn.xlarge", "g5.xlarge", "g5.2xlarge", "g5.4xlarge",
    ], var.instance_type)
    error_message = "instance_type must be one of the supported CPU (m5, r5) or GPU (g4dn, g5) types."
  }
}

variable "volume_size_gb" {
  description = "Size of the encrypted gp3 volume holding the home directory, in GB. Kept while the instance is stopped."
  type        = number
  default     = 100

  validation {
    condition     = var.volume_size_gb >= 50 && var.volume_size_gb <= 2000 && floor(var.volume_size_gb) == var.volume_size_gb
    error_message = "volume_size_gb must be a whole number from 50 to 2000."
  }
}

variable "idle_timeout_minutes" {
  description = "Stop the instance after this many minutes without notebook activity (0: never). The volume is kept."
  type        = number
  default     = 60

  validation {
    condition     = var.idle_timeout_minutes >= 0 && var.idle_timeout_minutes <= 1440 && floor(var.idle_timeout_minutes) == var.idle_timeout_minutes
    error_message = "idle_timeout_minutes must be a whole number from 0 to 1440."
  }
}

variable "public_access" {
  description = "Give the notebook a public IP and serve JupyterLab over HTTPS to allowed_cidr. Off: reach it through SSM port forwarding."
  type        = bool
  default     = false
}

variable "allowed_cidr" {
  description = "Network allowed to reach JupyterLab when public_access is on."
  type        = string
  default     = ""

  validation {
    condition     = var.allowed_cidr == "" || (can(cidrhost(var.allowed_cidr, 0)) && can(regex("/(3[0-2]|[12][0-9]|[89])$", var.allowed_cidr)))
    error_message = "allowed_cidr must be empty or an IPv4 CIDR block with a prefix of /8 or longer."
  }

  validation {
    condition     = !var.public_access || var.allowed_cidr != ""
    error_message = "Set allowed_cidr when public_access is true."
  }
}

variable "subnet_id" {
  description = "Subnet for the instance (a public one with public_access). Empty: a default subnet of the default VPC."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^(subnet-[0-9a-f]{8,17})?$", var.subnet_id))
    error_message = "subnet_id must be a subnet id such as subnet-0123456789abcdef0, or empty."
  }
}
