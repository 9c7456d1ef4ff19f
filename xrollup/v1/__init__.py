"""Generated from proto/xrollup/v1 by `make proto`. Do not edit."""
