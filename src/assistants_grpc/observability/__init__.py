"""What operators watch: metrics (`metrics`, `rpc`, `http`), traces (`tracing`), structured logs
(`logs`), and the health and runs views built on them (README "Operating"). Each module is small
and on its own, imported by the layers that record."""
