fn main() {
    println!("vieter-cli: not implemented yet");
}
