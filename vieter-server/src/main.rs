fn main() {
    println!("vieter-server: not implemented yet");
}
