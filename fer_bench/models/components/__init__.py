"""Plain nn.Module networks; the Lightning wrappers live one folder up."""
