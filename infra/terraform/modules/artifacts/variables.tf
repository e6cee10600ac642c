variable "name" {
  description = "Name prefix for the bucket and its key (the bucket name gets a random suffix: names are global)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name: 3-32 lowercase letters, digits and hyphens (it starts an S3 bucket name)."
  }
}

variable "release_prefix" {
  description = "Key prefix under which released twins live (TWIN_RELEASE_S3_PREFIX)."
  type        = string
  default     = "releases"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]*(/[a-z0-9][a-z0-9-]*)*$", var.release_prefix))
    error_message = "release_prefix: lowercase path segments without leading or trailing slashes, e.g. \"releases\"."
  }
}

variable "noncurrent_version_days" {
  description = "Days an overwritten or deleted object version is kept (the window in which it can be restored)."
  type        = number
  default     = 90
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete a bucket that still holds objects (every released model)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
