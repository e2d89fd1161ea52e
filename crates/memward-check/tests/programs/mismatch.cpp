// new[] freed with delete: memward check must report alloc-dealloc-mismatch.
#include <cstdio>

int main() {
  int *a = new int[10];
  a[0] = 1;
  delete a; // line 7
  std::printf("after\n");
  return 0;
}
