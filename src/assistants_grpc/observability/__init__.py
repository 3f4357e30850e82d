"""Operating the server: metrics, traces (and logs): each module small and on its own, imported by
the layers that record (README "Operating")."""
