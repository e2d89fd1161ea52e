// A child process that allocates, frees and execs another checked program; the parent
// frees what it allocated before the fork.
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../corpus.h"

int main(void) {
    char *before = opaque(malloc(1000));
    memset(before, 1, 1000);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 1000; i++) free(opaque(malloc((size_t)i * 13 + 1)));
        free(before);
        execlp("true", "true", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    free(before);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
