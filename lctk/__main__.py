"""`python -m lctk`: the same CLI as the `lctk` command (used by `torchrun -m lctk`)."""

from lctk.cli import main

if __name__ == "__main__":
    main()
