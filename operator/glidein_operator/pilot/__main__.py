import sys

from glidein_operator.pilot.main import main

sys.exit(main())
