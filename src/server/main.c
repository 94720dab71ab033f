/*
 * main.c - the holdfast executable: everything is in the server module.
 *
 * Built twice (CMakeLists.txt), alike but for where the web pages are when
 * --web does not say: the build tree's holdfast serves its checkout's web/,
 * so `make demo` and the tests see the pages they change; the one `make
 * install` copies serves PREFIX/share/holdfast/web, where the pages are
 * installed, and depends on no source tree.
 */
#include "server.h"

#ifndef HF_WEB_DIR_DEFAULT
#error "HF_WEB_DIR_DEFAULT must say where the web pages are"
#endif

int main(int argc, char **argv)
{
    return server_main(argc, argv, HF_WEB_DIR_DEFAULT);
}
