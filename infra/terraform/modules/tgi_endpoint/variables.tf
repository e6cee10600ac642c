variable "name" {
  description = "Name prefix of every resource (the autoscaling group is \"<name>-tgi\")."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the endpoint."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (with a NAT route: the hosts pull the TGI image from ghcr.io) for the hosts and the internal load balancer."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "private_subnet_ids: two subnets in different Availability Zones at least (the load balancer needs them)."
  }
}

variable "client_security_group_ids" {
  description = "Who may call TGI: a map of a short name to a security group id (the RAG API's tasks). Nothing else is admitted."
  type        = map(string)
}

variable "instance_type" {
  description = "GPU instance type (g5 or g6 family); TGI gets one shard per GPU."
  type        = string
  default     = "g5.xlarge"

  validation {
    condition     = can(regex("^g[56]\\.(xlarge|[0-9]+xlarge)$", var.instance_type))
    error_message = "instance_type: a g5 or g6 instance type, e.g. g5.xlarge, g6.12xlarge."
  }
}

variable "ami_id" {
  description = "Pin the AMI; null: the newest AWS Deep Learning Base GPU AMI matching ami_name_pattern (a new one rolls the hosts on the next apply)."
  type        = string
  default     = null
}

variable "ami_name_pattern" {
  description = "Name filter of the Deep Learning AMI (NVIDIA driver, Docker and the NVIDIA container toolkit preinstalled)."
  type        = string
  default     = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04) *"
}

variable "root_volume_size_gb" {
  description = "Root volume (gp3, encrypted): the AMI, the TGI image (about 15 GB) and the synced model."
  type        = number
  default     = 150

  validation {
    condition     = var.root_volume_size_gb >= 100
    error_message = "root_volume_size_gb: 100 GB at least (the Deep Learning AMI and the TGI image alone take about 90 GB)."
  }
}

variable "ebs_kms_key_arn" {
  description = "KMS key for the root volume; null: the account's default EBS key (aws/ebs). A customer key must let the Auto Scaling service-linked role use it."
  type        = string
  default     = null
}

variable "min_size" {
  description = "Fewest hosts."
  type        = number
  default     = 0
}

variable "max_size" {
  description = "Most hosts (an instance refresh briefly runs one more host than desired_capacity: leave room for it)."
  type        = number
  default     = 2
}

variable "desired_capacity" {
  description = "Hosts to run. 0 until the first twin is released (a host waits for current.json and costs money meanwhile)."
  type        = number
  default     = 1

  validation {
    condition     = var.desired_capacity >= 0
    error_message = "desired_capacity: 0 or more."
  }
}

variable "health_check_grace_seconds" {
  description = "Seconds a new host has to boot, pull the image, sync the model and pass /health before the group replaces it."
  type        = number
  default     = 1200
}

variable "refresh_min_healthy_percentage" {
  description = "Instance refresh: share of capacity kept healthy. 100 replaces hosts one at a time without downtime (needs GPU quota for one extra host); 0 allows downtime."
  type        = number
  default     = 100
}

variable "bucket_name" {
  description = "Artifacts bucket holding the released twins."
  type        = string
}

variable "bucket_arn" {
  description = "ARN of the artifacts bucket."
  type        = string
}

variable "bucket_kms_key_arn" {
  description = "KMS key of the artifacts bucket (the hosts may decrypt through S3 only)."
  type        = string
}

variable "release_prefix" {
  description = "Key prefix of released twins (TWIN_RELEASE_S3_PREFIX)."
  type        = string
  default     = "releases"
}

variable "author_slug" {
  description = "The author whose released twin the hosts serve: they read <release_prefix>/<author_slug>/current.json."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]*$", var.author_slug))
    error_message = "author_slug: the author id (lowercase letters, digits, hyphens), as `twin authors list` shows it."
  }
}

variable "model_uri" {
  description = "Pin one released version (s3://<bucket>/<release_prefix>/<author_slug>/<version>/); empty: follow current.json."
  type        = string
  default     = ""

  validation {
    condition     = var.model_uri == "" || can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+/$", var.model_uri))
    error_message = "model_uri: empty, or an s3:// URI of a version folder ending in \"/\"."
  }
}

variable "tgi_image_tag" {
  description = "Tag of ghcr.io/huggingface/text-generation-inference (pinned: a release, not latest)."
  type        = string
  default     = "3.3.5"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.tgi_image_tag))
    error_message = "tgi_image_tag: a release version such as 3.3.5 (never latest: a refresh would change TGI silently)."
  }
}

variable "quantize" {
  description = "TGI --quantize method; empty: serve the weights as released (bf16). eetq or bitsandbytes* quantize any model on load; the others need a model quantized that way."
  type        = string
  default     = ""

  validation {
    condition = contains([
      "", "awq", "compressed-tensors", "eetq", "exl2", "gptq", "marlin",
      "bitsandbytes", "bitsandbytes-nf4", "bitsandbytes-fp4", "fp8",
    ], var.quantize)
    error_message = "quantize: empty or one of TGI's methods: awq, compressed-tensors, eetq, exl2, gptq, marlin, bitsandbytes, bitsandbytes-nf4, bitsandbytes-fp4, fp8."
  }
}

variable "max_input_tokens" {
  description = "TGI --max-input-tokens: the longest prompt (retrieved context + question)."
  type        = number
  default     = 3072

  validation {
    condition     = var.max_input_tokens >= 1 && floor(var.max_input_tokens) == var.max_input_tokens
    error_message = "max_input_tokens: a positive whole number."
  }
}

variable "max_total_tokens" {
  description = "TGI --max-total-tokens: prompt plus answer."
  type        = number
  default     = 4096

  validation {
    condition     = var.max_total_tokens > var.max_input_tokens && var.max_total_tokens <= 131072 && floor(var.max_total_tokens) == var.max_total_tokens
    error_message = "max_total_tokens: a whole number above max_input_tokens and at most 131072."
  }
}

variable "num_shard" {
  description = "TGI --num-shard; null: the GPU count of instance_type."
  type        = number
  default     = null
}

variable "log_retention_days" {
  description = "Days the TGI logs are kept."
  type        = number
  default     = 365
}

variable "log_kms_key_arn" {
  description = "KMS key for the CloudWatch log group (its policy must allow the CloudWatch Logs service)."
  type        = string
}

variable "alarm_actions" {
  description = "ARNs notified when an alarm fires or clears (an SNS topic)."
  type        = list(string)
  default     = []
}

variable "alarm_5xx_per_5_minutes" {
  description = "5xx answers from TGI in 5 minutes that raise the alarm."
  type        = number
  default     = 5
}

variable "alarm_p90_latency_seconds" {
  description = "p90 response time (generation included) that raises the alarm."
  type        = number
  default     = 20
}

variable "enable_ssm" {
  description = "Attach AmazonSSMManagedInstanceCore so that operators reach hosts with Session Manager (no SSH, no open port)."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Protect the internal load balancer from deletion (turn off before `terraform destroy`)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
