from benchmarks.keeper.run import main

main()
