terraform {
  # Cross-variable validation blocks need Terraform 1.9 or later.
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # Remote state: the state holds the database password, so keep it in an encrypted, versioned S3 bucket with a
  # lock table, never on a laptop. Create the bucket and the table once (docs/deploy.md, "Remote state"), fill in
  # their names, uncomment, and run `terraform init -migrate-state`.
  #
  # backend "s3" {
  #   bucket         = "my-org-terraform-state"
  #   key            = "twin/example/terraform.tfstate"
  #   region         = "us-east-1"
  #   encrypt        = true
  #   dynamodb_table = "terraform-locks" # Terraform >= 1.10 can lock in S3 itself instead: use_lockfile = true
  # }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      Project     = "twin-platform"
      Environment = var.name
      ManagedBy   = "terraform"
    }
  }
}
