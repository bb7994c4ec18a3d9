# Providers cannot be created with for_each, and a module block's provider is fixed. So
# this root holds one aliased provider per supported cloud region (a "slot"), and
# regions.tf one block per slot whose for_each takes the topology regions in that cloud
# region. A new cloud region is one provider here, three blocks in regions.tf, and one
# entry in PROVIDER_SLOTS (regions/render.py); tests/deploy checks they agree.

# Global resources (the private DNS zone) are made through the default provider.
provider "aws" {
  region = "us-east-1"
}

provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"
  default_tags {
    tags = var.tags
  }
}

provider "aws" {
  alias  = "us_east_2"
  region = "us-east-2"
  default_tags {
    tags = var.tags
  }
}

provider "aws" {
  alias  = "us_west_2"
  region = "us-west-2"
  default_tags {
    tags = var.tags
  }
}

provider "aws" {
  alias  = "eu_west_1"
  region = "eu-west-1"
  default_tags {
    tags = var.tags
  }
}

provider "aws" {
  alias  = "eu_central_1"
  region = "eu-central-1"
  default_tags {
    tags = var.tags
  }
}

provider "aws" {
  alias  = "ap_southeast_1"
  region = "ap-southeast-1"
  default_tags {
    tags = var.tags
  }
}
