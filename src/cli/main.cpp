#include <iostream>
#include "scalevec/config_io.h"
int main(int argc, char** argv) { std::cout << scalevec::config_to_yaml(scalevec::Config{}); }
