from lienthong.cli.main import main

main()
