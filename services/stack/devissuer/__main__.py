from services.stack.devissuer.server import main

main()
