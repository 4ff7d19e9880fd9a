"""`python -m nexusctl` runs the same CLI as the `nexusctl` console script."""

from nexusctl.cli.main import main

if __name__ == "__main__":
    main()
