import sys

from trio_ollama.cli.main import main

sys.exit(main())
