"""`python -m vibekit_telemetry.cli` runs the `telemetry` command line."""

from . import main

if __name__ == "__main__":
    main()
