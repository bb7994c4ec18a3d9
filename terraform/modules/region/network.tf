# Two private subnets (nodes, record store, endpoint) and two public ones (NAT only),
# carved from the region's range: /16 gives four /18s.

resource "aws_vpc" "region" {
  cidr_block           = var.cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(local.tags, { Name = local.prefix })
}

resource "aws_default_security_group" "region" {
  vpc_id = aws_vpc.region.id
  tags   = local.tags
}

resource "aws_subnet" "private" {
  count             = 2
  vpc_id            = aws_vpc.region.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.cidr, 2, count.index)
  tags = merge(local.tags, {
    Name                              = "${local.prefix}-private-${count.index}"
    "kubernetes.io/role/internal-elb" = "1"
  })
}

resource "aws_subnet" "public" {
  count             = 2
  vpc_id            = aws_vpc.region.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.cidr, 2, count.index + 2)
  tags              = merge(local.tags, { Name = "${local.prefix}-public-${count.index}" })
}

resource "aws_internet_gateway" "region" {
  vpc_id = aws_vpc.region.id
  tags   = local.tags
}

resource "aws_eip" "nat" {
  domain = "vpc"
  tags   = local.tags
}

resource "aws_nat_gateway" "region" {
  allocation_id = aws_eip.nat.id
  subnet_id     = aws_subnet.public[0].id
  tags          = local.tags
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.region.id
  tags   = local.tags
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.region.id
  }
}

resource "aws_route_table_association" "public" {
  count          = 2
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

# Peering routes to the other regions are added to this table by modules/interconnect.
resource "aws_route_table" "private" {
  vpc_id = aws_vpc.region.id
  tags   = local.tags
  route {
    cidr_block     = "0.0.0.0/0"
    nat_gateway_id = aws_nat_gateway.region.id
  }
}

resource "aws_route_table_association" "private" {
  count          = 2
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}

resource "aws_flow_log" "region" {
  vpc_id               = aws_vpc.region.id
  traffic_type         = "ALL"
  log_destination_type = "cloud-watch-logs"
  log_destination      = aws_cloudwatch_log_group.flow.arn
  iam_role_arn         = aws_iam_role.flow.arn
  tags                 = local.tags
}

resource "aws_cloudwatch_log_group" "flow" {
  name              = "/homeport/${local.prefix}/flow"
  retention_in_days = 365
  kms_key_id        = aws_kms_key.region.arn
  tags              = local.tags
}

resource "aws_iam_role" "flow" {
  name               = "${local.prefix}-flow-logs"
  tags               = local.tags
  assume_role_policy = local.assume_role["vpc-flow-logs"]
}

resource "aws_iam_role_policy" "flow" {
  name = "write-flow-logs"
  role = aws_iam_role.flow.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
      Resource = "${aws_cloudwatch_log_group.flow.arn}:*"
    }]
  })
}
