# One homeport region: its network, Kubernetes cluster, record store and endpoint.
# Redis and etcd run inside the cluster (deploy/helm/homeport): managed Redis forbids
# REPLICAOF and CLUSTER FAILOVER TAKEOVER, which failover needs.

data "aws_region" "current" {}

# The two zones the region's subnets use, named, so the set never grows by itself.
data "aws_availability_zones" "available" {
  state = "available"
  filter {
    name   = "zone-name"
    values = ["${var.cloud_region}a", "${var.cloud_region}b"]
  }
}

data "aws_caller_identity" "current" {}

locals {
  prefix = "${var.deployment}-${var.name}"
  azs    = slice(data.aws_availability_zones.available.names, 0, 2)
  tags   = merge(var.tags, { "homeport/deployment" = var.deployment, "homeport/region" = var.name })
  # Trust policy of each service role the region creates, by the service that assumes it.
  assume_role = {
    for service in ["eks", "ec2", "vpc-flow-logs", "monitoring.rds"] : service => jsonencode({
      Version = "2012-10-17"
      Statement = [{
        Effect    = "Allow"
        Principal = { Service = "${service}.amazonaws.com" }
        Action    = "sts:AssumeRole"
      }]
    })
  }
}

check "provider_matches_region" {
  assert {
    condition     = data.aws_region.current.name == var.cloud_region
    error_message = "The aws provider passed to region ${var.name} targets ${data.aws_region.current.name}, not ${var.cloud_region}."
  }
}

resource "aws_kms_key" "region" {
  description         = "${local.prefix}: EKS secrets, RDS storage, flow logs"
  enable_key_rotation = true
  tags                = local.tags
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdmin"
        Effect    = "Allow"
        Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "FlowLogs"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.cloud_region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
      },
    ]
  })
}
