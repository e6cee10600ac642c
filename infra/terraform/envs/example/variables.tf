# ---------------------------------------------------------------- where and what

variable "aws_region" {
  description = "AWS region of every resource."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region: a region name such as us-east-1."
  }
}

variable "name" {
  description = "Name prefix of every resource (one per environment: twin-prod, twin-staging)."
  type        = string
  default     = "twin"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name))
    error_message = "name: 3-20 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "vpc_cidr" {
  description = "Address range of the VPC (a /16 to /20; subnets are /20 slices of a /16)."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr: an IPv4 CIDR block of /20 or larger."
  }
}

variable "api_domain_name" {
  description = "The API's public name (a certificate is issued for it), e.g. twin.example.com."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.api_domain_name))
    error_message = "api_domain_name: a lowercase DNS name such as twin.example.com."
  }
}

variable "route53_zone_id" {
  description = "Route 53 hosted zone that holds api_domain_name (the certificate is validated through it)."
  type        = string

  validation {
    condition     = can(regex("^Z[A-Z0-9]{4,31}$", var.route53_zone_id))
    error_message = "route53_zone_id: a hosted zone id such as Z0123456789ABCDEFGHIJ."
  }
}

variable "author_slug" {
  description = "The author whose twin is served (the author id in `twin authors list`), e.g. mara-ellison."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]*$", var.author_slug))
    error_message = "author_slug: an author id (lowercase letters, digits and hyphens)."
  }
}

variable "release_prefix" {
  description = "Key prefix of released twins in the artifacts bucket (TWIN_RELEASE_S3_PREFIX)."
  type        = string
  default     = "releases"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]*(/[a-z0-9][a-z0-9-]*)*$", var.release_prefix))
    error_message = "release_prefix: lowercase path segments without leading or trailing slashes."
  }
}

# ---------------------------------------------------------------- TGI

variable "tgi_instance_type" {
  description = "GPU instance type of the TGI hosts: the g5 (A10G, 24 GB) or g6 (L4, 24 GB) family. TGI shards over all GPUs."
  type        = string
  default     = "g5.xlarge"

  validation {
    condition     = can(regex("^g[56]\\.(xlarge|[0-9]+xlarge)$", var.tgi_instance_type))
    error_message = "tgi_instance_type: a g5 or g6 instance type, e.g. g5.xlarge, g6.xlarge, g5.12xlarge."
  }
}

variable "tgi_desired_capacity" {
  description = "TGI hosts to run. Keep 0 until the first twin is released (hosts cost money while they wait)."
  type        = number
  default     = 0

  validation {
    condition     = var.tgi_desired_capacity >= 0 && var.tgi_desired_capacity <= 20
    error_message = "tgi_desired_capacity: 0 to 20."
  }
}

variable "tgi_min_size" {
  description = "Fewest TGI hosts."
  type        = number
  default     = 0
}

variable "tgi_max_size" {
  description = "Most TGI hosts (keep one above tgi_desired_capacity: an instance refresh starts the new host before stopping the old one)."
  type        = number
  default     = 2

  validation {
    condition     = var.tgi_max_size >= var.tgi_desired_capacity && var.tgi_max_size >= var.tgi_min_size
    error_message = "tgi_max_size: at least tgi_desired_capacity and tgi_min_size."
  }
}

variable "tgi_image_tag" {
  description = "Release of ghcr.io/huggingface/text-generation-inference."
  type        = string
  default     = "3.3.5"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.tgi_image_tag))
    error_message = "tgi_image_tag: a release version such as 3.3.5, never latest."
  }
}

variable "model_uri" {
  description = "Pin the TGI hosts to one released version: s3://<bucket>/<release_prefix>/<author_slug>/<version>/. Empty: serve what current.json names (the normal case)."
  type        = string
  default     = ""

  validation {
    condition     = var.model_uri == "" || can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+/$", var.model_uri))
    error_message = "model_uri: empty, or an s3:// URI of a released version folder, ending in \"/\"."
  }
}

variable "quantize" {
  description = "TGI --quantize: empty for the released bf16 weights; eetq (8-bit) or bitsandbytes-nf4 (4-bit) quantize on load to fit a larger twin on a smaller GPU."
  type        = string
  default     = ""

  validation {
    condition = contains([
      "", "awq", "compressed-tensors", "eetq", "exl2", "gptq", "marlin",
      "bitsandbytes", "bitsandbytes-nf4", "bitsandbytes-fp4", "fp8",
    ], var.quantize)
    error_message = "quantize: empty or one of awq, compressed-tensors, eetq, exl2, gptq, marlin, bitsandbytes, bitsandbytes-nf4, bitsandbytes-fp4, fp8."
  }
}

variable "max_input_tokens" {
  description = "TGI --max-input-tokens: longest prompt (the API's retrieved context, TWIN_API_CONTEXT_TOKENS, plus the question and template)."
  type        = number
  default     = 3072

  validation {
    condition     = var.max_input_tokens >= 256 && floor(var.max_input_tokens) == var.max_input_tokens
    error_message = "max_input_tokens: a whole number of at least 256."
  }
}

variable "max_total_tokens" {
  description = "TGI --max-total-tokens: prompt plus answer (TWIN_LLM_MAX_NEW_TOKENS must fit in the difference)."
  type        = number
  default     = 4096

  validation {
    condition     = var.max_total_tokens > var.max_input_tokens && var.max_total_tokens <= 131072 && floor(var.max_total_tokens) == var.max_total_tokens
    error_message = "max_total_tokens: a whole number above max_input_tokens, at most 131072."
  }
}

# ---------------------------------------------------------------- API

variable "api_image_tag" {
  description = "Tag of the API image in this environment's ECR repository (pushed as in docs/deploy.md)."
  type        = string
  default     = "0.1.0"

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.api_image_tag)) && var.api_image_tag != "latest"
    error_message = "api_image_tag: a Docker tag other than latest (the repository's tags are immutable)."
  }
}

variable "api_image" {
  description = "Run this image instead (full reference with tag or digest); empty: <ecr repository>:<api_image_tag>."
  type        = string
  default     = ""
}

variable "api_cpu" {
  description = "Fargate CPU units per API task (1024 = 1 vCPU)."
  type        = number
  default     = 1024

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.api_cpu)
    error_message = "api_cpu: one of Fargate's sizes: 256, 512, 1024, 2048, 4096, 8192, 16384."
  }
}

variable "api_memory" {
  description = "Fargate memory per API task, in MiB."
  type        = number
  default     = 2048
}

variable "api_workers" {
  description = "Uvicorn workers per API task (TWIN_API_WORKERS)."
  type        = number
  default     = 2
}

variable "api_min_count" {
  description = "Fewest API tasks (two keep the API up while one is replaced)."
  type        = number
  default     = 2
}

variable "api_max_count" {
  description = "Most API tasks (CPU autoscaling)."
  type        = number
  default     = 6
}

variable "api_secrets" {
  description = "More secret environment variables for the API: NAME => Secrets Manager or SSM parameter ARN (e.g. OPIK_API_KEY)."
  type        = map(string)
  default     = {}
}

variable "api_environment" {
  description = "More plain TWIN_* settings for the API (no secrets), e.g. { TWIN_LLM_MAX_NEW_TOKENS = \"384\" }."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------- database, operations

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_multi_az" {
  description = "Keep a standby database in the second Availability Zone (doubles its cost)."
  type        = bool
  default     = true
}

variable "database_client_security_group_ids" {
  description = "More security groups that may reach the database (e.g. the Dagster deployment's): name => id."
  type        = map(string)
  default     = {}
}

variable "alarm_email" {
  description = "Address that receives the alarms (confirm the subscription e-mail); empty: none."
  type        = string
  default     = ""
}

variable "log_retention_days" {
  description = "Days every log group keeps its logs."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days: one of the values CloudWatch Logs accepts (e.g. 30, 90, 365)."
  }
}

variable "deletion_protection" {
  description = "Protect the database and the load balancers from deletion; set false before `terraform destroy`."
  type        = bool
  default     = true
}
