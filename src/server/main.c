/*
 * main.c - the holdfast executable: everything is in the server module.
 */
#include "server.h"

int main(int argc, char **argv)
{
    return server_main(argc, argv);
}
