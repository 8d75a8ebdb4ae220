from resdeploy.cli import main

main()
