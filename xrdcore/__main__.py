from xrdcore.study.cli import main

raise SystemExit(main())
