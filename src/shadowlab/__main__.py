from shadowlab.cli import main

raise SystemExit(main())
