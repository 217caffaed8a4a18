# paved_team, paved_workspace and paved_template are set and declared by Paved (paved_platform.tf in the run's
# work dir, from apps/catalog/spec/platform.py): use them, do not declare them.

# --- Parameters (template.yaml) -------------------------------------------------------------------------------

variable "region" {
  description = "AWS region to run the cluster in."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = contains(["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1"], var.region)
    error_message = "region must be one of us-east-1, us-east-2, us-west-2, eu-west-1, eu-central-1."
  }
}

variable "cluster_name" {
  description = "Short name of the cluster; prefixes every resource name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,23}$", var.cluster_name))
    error_message = "cluster_name must be 3-24 characters: lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "instance_type" {
  description = "GPU instance type of every node."
  type        = string
  default     = "g5.2xlarge"

  validation {
    condition = contains([
      "g5.xlarge", "g5.2xlarge", "g5.4xlarge", "g5.12xlarge", "g5.48xlarge", "p4d.24xlarge", "p5.48xlarge",
    ], var.instance_type)
    error_message = "instance_type must be a supported g5, p4d or p5 type."
  }
}

variable "node_count" {
  description = "Number of nodes."
  type        = number
  default     = 2

  validation {
    condition     = var.node_count >= 1 && var.node_count <= 16 && floor(var.node_count) == var.node_count
    error_message = "node_count must be a whole number from 1 to 16."
  }
}

variable "volume_size_gb" {
  description = "Size of each node's encrypted gp3 root volume, in GB (datasets, checkpoints, containers)."
  type        = number
  default     = 500

  validation {
    condition     = var.volume_size_gb >= 100 && var.volume_size_gb <= 16000 && floor(var.volume_size_gb) == var.volume_size_gb
    error_message = "volume_size_gb must be a whole number from 100 to 16000."
  }
}

variable "use_spot" {
  description = "Run the nodes as spot instances (cheaper, may be interrupted with two minutes' notice)."
  type        = bool
  default     = false
}

variable "spot_max_price" {
  description = "Highest hourly price per node to pay for spot capacity, in USD. Required with use_spot."
  type        = string
  default     = ""

  validation {
    condition     = var.spot_max_price == "" || can(regex("^[0-9]{1,3}\\.[0-9]{1,4}$", var.spot_max_price))
    error_message = "spot_max_price must be empty or a price such as 1.20."
  }

  validation {
    condition     = !var.use_spot || var.spot_max_price != ""
    error_message = "Set spot_max_price when use_spot is true."
  }
}

variable "ssh_key_name" {
  description = "Existing EC2 key pair for SSH to the nodes. Empty: no SSH; connect with SSM Session Manager."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^([A-Za-z0-9._-]{1,255})?$", var.ssh_key_name))
    error_message = "ssh_key_name must be an EC2 key pair name (letters, digits, . _ -) or empty."
  }
}

variable "ssh_cidr" {
  description = "Network allowed to reach the nodes on port 22 when an SSH key is set."
  type        = string
  default     = "10.0.0.0/8"

  validation {
    condition     = can(cidrhost(var.ssh_cidr, 0)) && can(regex("/(3[0-2]|[12][0-9]|[89])$", var.ssh_cidr))
    error_message = "ssh_cidr must be an IPv4 CIDR block with a prefix of /8 or longer."
  }
}

variable "subnet_id" {
  description = "Private subnet for the nodes. Empty: a default subnet of the default VPC."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^(subnet-[0-9a-f]{8,17})?$", var.subnet_id))
    error_message = "subnet_id must be a subnet id such as subnet-0123456789abcdef0, or empty."
  }
}

variable "dataset_bucket" {
  description = "S3 bucket the nodes may read datasets from and write checkpoints to. Empty: no S3 access."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])?$", var.dataset_bucket))
    error_message = "dataset_bucket must be an S3 bucket name or empty."
  }
}
