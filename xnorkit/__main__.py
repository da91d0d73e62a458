from xnorkit.cli import main

main()
