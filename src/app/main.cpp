// edgecert: one binary, subcommands dispatched by name (src/app/commands.h).
#include "app/commands.h"

int main(int argc, char** argv) { return edgecert::app::dispatch(argc, argv); }
