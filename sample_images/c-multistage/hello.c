#include <stdio.h>

int main(void) {
    printf("Hello from a static C binary built by strata\n");
    return 0;
}
