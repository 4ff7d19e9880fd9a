"""`python -m nexusctl` runs the same CLI as the `nexusctl` console script."""

from nexusctl.cli.entry import main

if __name__ == "__main__":
    main()
