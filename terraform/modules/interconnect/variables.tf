variable "name" {
  description = "The homeport region this instance runs for (its provider targets that region)."
  type        = string
}

variable "side" {
  description = "request: open a peering to every region named after this one. accept: accept the peerings that regions named before this one opened. Two passes, because an inter-region peering is opened with one region's provider and accepted with the other's."
  type        = string
  validation {
    condition     = contains(["request", "accept"], var.side)
    error_message = "side must be request or accept."
  }
}

variable "regions" {
  description = "Every region's network, by homeport region name (the region modules' outputs)."
  type = map(object({
    vpc_id                 = string
    cidr                   = string
    cloud_region           = string
    private_route_table_id = string
  }))
}

variable "requests" {
  description = "Peering connection ids opened by the request pass, keyed \"<requester>|<accepter>\". Empty on the request side."
  type        = map(string)
  default     = {}
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
