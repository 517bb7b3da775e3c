import sys

from ironcache.cli import main

sys.exit(main())
