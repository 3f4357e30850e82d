"""What operators watch: structured logs (`logs`), and the health and runs views built on them."""
