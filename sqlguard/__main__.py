from sqlguard.cli import main

main()
