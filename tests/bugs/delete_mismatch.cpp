// delete_mismatch.cpp: memory given back with the wrong operator.
//   delete_mismatch new-delete[]    new, freed with delete[]
//   delete_mismatch new[]-delete    new[] of objects with a destructor,
//                                   freed with delete
//   delete_mismatch malloc-delete   malloc, freed with delete
//   delete_mismatch new-free        new, freed with free
//   delete_mismatch sized-delete    a sized delete given a size of another
//                                   size class than the object's
//   delete_mismatch new-free medium|large       the same for a medium
//   delete_mismatch malloc-delete medium|large  or large block (a page run,
//                                               a huge block)
// Built with -fsized-deallocation -fno-builtin, so that the operators are
// called as written.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

struct Thing {
  char bytes[40];
  Thing() {
    std::memset(bytes, 1, sizeof bytes);
  }
  ~Thing() {
    std::memset(bytes, 2, sizeof bytes);
  }
};

static void *volatile sink;

template <typename T> static T *hide(T *p) {
  sink = p;
  return static_cast<T *>(sink);
}

static void churn() {
  for (int round = 0; round < 2; round++) {
    Thing *things[64];
    for (auto &t : things) t = hide(new Thing);
    for (auto &t : things) delete hide(t);
  }
}

// The sizes of tests/bugs/bugs.h.
static std::size_t block_size(const char *kind) {
  if (std::strcmp(kind, "medium") == 0) return 100000;
  if (std::strcmp(kind, "large") == 0) return 5000000;
  return 0;
}

int main(int argc, char **argv) {
  const char *how = argc > 1 ? argv[1] : "";
  std::size_t size = block_size(argc > 2 ? argv[2] : "");
  if (size != 0 && std::strcmp(how, "new-free") == 0) {
    void *p = hide(::operator new(size));
    std::memset(p, 1, size);
    std::free(hide(p));
  } else if (size != 0 && std::strcmp(how, "malloc-delete") == 0) {
    void *p = hide(std::malloc(size));
    if (p == nullptr) return 3;
    std::memset(p, 1, size);
    ::operator delete(hide(p));
  } else if (std::strcmp(how, "new-delete[]") == 0) {
    Thing *t = hide(new Thing);
    delete[] hide(t);
  } else if (std::strcmp(how, "new[]-delete") == 0) {
    Thing *t = hide(new Thing[3]);
    delete hide(t);
  } else if (std::strcmp(how, "malloc-delete") == 0) {
    Thing *t = hide(static_cast<Thing *>(std::malloc(sizeof(Thing))));
    delete hide(t);
  } else if (std::strcmp(how, "new-free") == 0) {
    Thing *t = hide(new Thing);
    std::free(hide(t));
  } else if (std::strcmp(how, "sized-delete") == 0) {
    void *p = hide(::operator new(40));
    ::operator delete(hide(p), static_cast<std::size_t>(4000));
  } else {
    std::fprintf(stderr, "usage: delete_mismatch new-delete[]|new[]-delete|malloc-delete|new-free|sized-delete, "
                         "or new-free|malloc-delete medium|large\n");
    return 2;
  }
  churn();
  std::printf("survived\n");
  return 0;
}
