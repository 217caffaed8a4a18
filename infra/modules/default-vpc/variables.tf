variable "subnet_id" {
  description = "Subnet to use. Empty: a default subnet of the default VPC."
  type        = string
  default     = ""
}
